"""The `wavllm` console script of an installed wheel: `wavllm convert` runs the converter in
this interpreter; every other command runs the executable packed beside this file."""
import os
import sys


def main():
    args = sys.argv[1:]
    if args[:1] == ["convert"]:
        from . import convert
        return convert.main(args[1:])
    exe = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "wavllm")
    os.execv(exe, [exe] + args)


if __name__ == "__main__":
    sys.exit(main())
