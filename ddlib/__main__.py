from ddlib.cli import main

raise SystemExit(main())
