"""The commands: `python -m lens report IMAGE... --model NAME --out DIR`,
`python -m lens study SOURCE --model NAME --out DIR` and `python -m lens card [--weights DIR]`
(see `--help` of each)."""
import importlib
import sys

COMMANDS = {"report": ("lens.report", "per image: the overview, per-block PNGs and attention.json"),
            "study": ("lens.study", "over a dataset: per class and block, channel statistics, maps and figures"),
            "card": ("lens.card", "the bundled shapes models measured on fresh test images: their model card")}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        usage = "\n".join(f"  {name:8} {what}" for name, (_, what) in COMMANDS.items())
        print(f"usage: python -m lens COMMAND [options]\n\ncommands:\n{usage}\n\n"
              "python -m lens COMMAND --help describes each.", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
