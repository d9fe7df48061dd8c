from oomplan.cli.app import main

main()
