"""`python -m dfinspect`."""

from dfinspect.cli import main

main()
