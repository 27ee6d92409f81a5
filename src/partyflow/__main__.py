from partyflow.cli.main import main

main()
