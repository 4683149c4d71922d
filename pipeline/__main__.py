"""`python -m pipeline` is the same as the `denoise` command."""

from pipeline.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
