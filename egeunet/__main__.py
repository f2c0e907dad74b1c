"""``python -m egeunet COMMAND ...``: the console scripts without relying on PATH."""

import sys

from egeunet import cli

COMMANDS = {"train": cli.train_main, "eval": cli.eval_main, "export": cli.export_main,
            "predict": cli.predict_main, "bench": cli.bench_main,
            "armlab": cli.armlab_main}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m egeunet {{{','.join(COMMANDS)}}} [args]", file=sys.stderr)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
