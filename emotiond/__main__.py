from emotiond.cli import main

raise SystemExit(main())
