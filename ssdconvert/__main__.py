from ssdconvert.cli import main

main()
