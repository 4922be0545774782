from marlin.cli import main

main()
