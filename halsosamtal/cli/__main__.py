from halsosamtal.cli.app import main

main()
