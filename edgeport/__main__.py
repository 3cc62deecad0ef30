"""``python -m edgeport``: the same entry point as the ``edgeport`` command."""

from edgeport.cli import main

raise SystemExit(main())
