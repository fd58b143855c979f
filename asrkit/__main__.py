"""`python -m asrkit` is the same as the `asrkit` console script."""

from asrkit.bin.main import main

if __name__ == "__main__":
    main()
