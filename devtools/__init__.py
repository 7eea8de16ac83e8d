"""Developer tooling, outside the runtime package and the image: the demo, the Fashion-MNIST raw
drop, and a local HDFS for tests and benchmarks."""
