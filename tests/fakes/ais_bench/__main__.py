from ais_bench.infer.main import main

main()
