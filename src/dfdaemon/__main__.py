"""`python -m dfdaemon`: the dfdaemon command."""

from dfdaemon.main import main

main()
