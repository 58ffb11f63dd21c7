from toolbridge.cli import main

raise SystemExit(main())
