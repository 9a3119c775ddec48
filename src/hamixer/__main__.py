from hamixer.cli import main

raise SystemExit(main())
