from hir_edge.cli import main

main()
