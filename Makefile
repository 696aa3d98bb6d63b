# The two front-door commands: `make demo` and `make test`.

CARGO ?= cargo
SAMPLE := media/bigbuckbunny.mp4

.PHONY: all setup build release demo test deb clean

# Everything: the debug build the tests use and the release build `make bench` times.
all: build release

setup:
	bash scripts/install-deps.sh
	bash scripts/install-peers.sh
	bash scripts/fetch-sample.sh
	bash scripts/install-deb-tools.sh

build: setup
	$(CARGO) build --locked

release: setup
	$(CARGO) build --release --locked

demo: build
	bash scripts/demo.sh

test: build
	$(CARGO) test --locked -- --test-threads=2

# The Debian package, release build: target/debian/bridge_<version>_<arch>.deb
deb: setup
	$(CARGO) deb --locked

clean:
	$(CARGO) clean
	rm -rf out

# The bridge against a bare gst-launch-1.0 encode and against FFmpeg, on the
# test source and the looped sample clip, written to BENCHMARKS.md with charts
# in bench/charts/. Each command runs --repeats times for --duration s in real
# time. Longer runs: make bench BENCH_ARGS="--duration 30 --repeats 5".
.PHONY: bench
bench:
	$(CARGO) build --release --locked
	/usr/bin/python3 bench/run.py $(BENCH_ARGS)
