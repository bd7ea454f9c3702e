from mlipprops.cli import main

raise SystemExit(main())
