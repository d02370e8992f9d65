"""The shapes dataset and how the bundled models were trained: the procedural shapes scenes with
their object masks (`training.shapes`), the app's samples picked from them (`training.samples`), the
training recipes and loop (`training.train`) and the four-model run for a GPU (`training.train_all`).
Imports blocks and pretrained (where trained weights go and how inputs are made); lens reads the
dataset for the model card and the study, so nothing here imports lens."""
