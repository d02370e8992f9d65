"""The deletion and insertion options `lens report` and `lens study` share: the steps of each
curve and what a removed pixel becomes (`lens.faithfulness.curves`)."""
import argparse

from .faithfulness import FILLS


def add_curve_options(parser: argparse.ArgumentParser) -> None:
    """--faithfulness-steps and --faithfulness-fill, for a command that has --faithfulness."""
    parser.add_argument("--faithfulness-steps", type=int, default=20, metavar="S",
                        help="with --faithfulness: steps of each curve (default: %(default)s)")
    parser.add_argument("--faithfulness-fill", choices=list(FILLS), default="blur",
                        help="with --faithfulness: what a removed pixel becomes: blur (RISE), mean (the dataset's "
                             "mean colour) or road (ROAD's imputation, about 5x slower) (default: %(default)s)")
