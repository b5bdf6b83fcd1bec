from vgsite.cli import main

main()
