"""What the page's terms mean, one line each, written once: the app shows them as tooltips and in its
glossary, the README points here."""

GLOSSARY = {
    "gate": "An attention weight between 0 and 1 that multiplies a channel (SE, ECA, CBAM's channel gate) or a "
            "position (CBAM's spatial gate) of the block's features.",
    "stretched": "Drawn from the map's own lowest to its highest value, so contrast shows even where the values "
                 "differ little; colours then do not compare across maps.",
    "mass ratio": "The share of the map's mass on the object over the object's share of the image: 1 is what a "
                  "uniform map scores, higher means the map sits on the object.",
    "pointing game": "Whether the map's highest point lies on the object (Zhang et al., ECCV 2016): 1 yes, 0 no; "
                     "undefined for a map with one value everywhere, which has no highest point.",
    "AUC": "The chance that a random object pixel outranks a random background pixel on the map: 0.5 is chance, "
           "1 a perfect detector of the object.",
    "deletion AUC": "Area under the target's probability as the pixels the map ranks highest are removed first "
                    "(Petsiuk et al., BMVC 2018): lower means the prediction depends more on what the map marks.",
    "insertion AUC": "Area under the target's probability as those pixels are restored first onto a blank: higher "
                     "means what the map marks suffices more for the prediction.",
    "random band": "The 5-95% range of the same AUC for random maps of the block's resolution: inside it, a map is "
                   "no better than chance.",
    "inter-class r": "The correlation, over channels, between two classes' mean channel weights, averaged over "
                     "class pairs: near 1, the block weights the same channels whatever the class.",
    "eta²": "The share of a channel weight's variance over images that the class explains (0 to 1), averaged over "
            "channels: high means the gate depends on the class.",
    "static": "A channel whose weight varies by less than 0.01 (standard deviation) over the images: it acts as a "
              "fixed scale, not as attention.",
    "rank agreement": "Spearman's rank correlation over the map's cells: +1 both rank the cells in the same order, "
                      "0 unrelated, -1 opposite.",
}
