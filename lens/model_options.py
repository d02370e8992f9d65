"""The model options every command shares: a registry name or a weights file, what a bare weights
file cannot say (input size, crop, class names), and the device."""
import argparse
import sys
from pathlib import Path

import pretrained


def class_names(path: Path) -> tuple[str, ...]:
    """argparse type: a text file of class names, one per line."""
    try:
        return pretrained.class_names(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise argparse.ArgumentTypeError(f"cannot read class names from {path}: {e}") from e


def add_model_options(parser: argparse.ArgumentParser, several: bool = False) -> None:
    """`several`: --model takes one or more names (each is done in turn)."""
    if several:
        parser.add_argument("--model", nargs="+", default=[pretrained.DEFAULT_MODEL], metavar="MODEL",
                            help="names from pretrained.available() or weights files, one or more "
                                 f"(default: {pretrained.DEFAULT_MODEL})")
    else:
        parser.add_argument("--model", default=pretrained.DEFAULT_MODEL,
                            help="a name from pretrained.available() or a weights file (default: %(default)s)")
    parser.add_argument("--input-size", type=int, metavar="PIXELS",
                        help="for a weights file: the image size the model was trained on (default: 224, or "
                             "the file's own)")
    parser.add_argument("--crop-pct", type=float, metavar="F",
                        help="for a weights file: the centre crop's share of the resized image (default: 0.875)")
    parser.add_argument("--labels", type=lambda text: class_names(Path(text)), metavar="FILE",
                        help="for a weights file: class names, one per line (default: class 0, class 1, ...)")
    parser.add_argument("--device", metavar="DEVICE",
                        help="cpu, cuda or cuda:N (default: a CUDA GPU when there is one, else the CPU)")


def load_model(args: argparse.Namespace, parser: argparse.ArgumentParser) -> pretrained.LoadedModel | None:
    """The model the options name, configured; None (after printing why) if it cannot be loaded.
    Options that contradict each other end the command through `parser.error`."""
    try:
        pretrained.resolve_device(args.device)
    except ValueError as e:
        parser.error(f"--device: {e}")
    try:
        loaded = pretrained.load(args.model, device=args.device)
    except (ValueError, OSError, pretrained.ModelUnavailable) as e:
        print(f"error: cannot load model {args.model!r}: {e}", file=sys.stderr)
        return None
    try:
        return loaded.configured(args.input_size, args.crop_pct, args.labels)
    except ValueError as e:
        parser.error(str(e))
