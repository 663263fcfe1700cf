from kubeshape.cli.app import main

main()
