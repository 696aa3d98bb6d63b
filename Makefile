# The two front-door commands: `make demo` and `make test`.

CARGO ?= cargo
SAMPLE := media/bigbuckbunny.mp4

.PHONY: all setup build demo test unit integration clean

all: build

setup:
	bash scripts/install-deps.sh
	bash scripts/install-peers.sh
	bash scripts/fetch-sample.sh

build: setup
	$(CARGO) build --locked

demo: build
	bash scripts/demo.sh

test: build
	$(CARGO) test --locked -- --test-threads=2

clean:
	$(CARGO) clean
	rm -rf out
