from promenade_cli.main import main

main()
