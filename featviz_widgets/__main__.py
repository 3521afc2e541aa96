"""`python -m featviz_widgets`: the `featviz-widgets` command."""

from ._cli import main

raise SystemExit(main())
