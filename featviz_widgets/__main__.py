"""`python -m featviz_widgets`: the `featviz-widgets` command."""

from .cli import main

raise SystemExit(main())
