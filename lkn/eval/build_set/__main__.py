from lkn.eval.build_set import main

main()
