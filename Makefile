# wasmpacs: build, run, test and benchmark. Everything builds in the release profile once;
# tests and benchmarks reuse that build and the compiled plugins.
CARGO ?= cargo
PLUGIN_TARGET := wasm32-wasip2
PLUGIN_OUT := plugins/target/$(PLUGIN_TARGET)/release
DIST := plugins/dist

.PHONY: build host cmake plugins run test bench clean

build: plugins host

# The whole workspace in one go, so that `cargo test --release --workspace` reuses this build
# (building the binary alone would unify features differently and compile the host twice).
host: cmake
	$(CARGO) build --release --workspace

# cmake builds CharLS, the JPEG-LS codec the server renders previews with; installed from
# Debian's packages when missing.
cmake:
	@command -v cmake >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "cmake is needed to build the JPEG-LS codec: install it" >&2; exit 1; }; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq cmake; }

# The bundled plugin components, plus the example/test variants used by hot-reload tests.
# Built from inside plugins/ so that plugins/.cargo/config.toml (guest stack size) applies.
plugins:
	rustup target add $(PLUGIN_TARGET) >/dev/null 2>&1 || true
	cd plugins && $(CARGO) build --release --target $(PLUGIN_TARGET)
	mkdir -p $(DIST)
	cp $(PLUGIN_OUT)/patients.wasm $(PLUGIN_OUT)/hostile.wasm $(PLUGIN_OUT)/legacy.wasm $(DIST)/
	cp $(PLUGIN_OUT)/kos.wasm $(PLUGIN_OUT)/orders.wasm $(PLUGIN_OUT)/pathology.wasm $(DIST)/
	cd plugins && $(CARGO) build --release --target $(PLUGIN_TARGET) -p wasmpacs-plugin-patients --features strict
	cp $(PLUGIN_OUT)/patients.wasm $(DIST)/patients-strict.wasm
	cd plugins && $(CARGO) build --release --target $(PLUGIN_TARGET) -p wasmpacs-plugin-kos --features of-interest
	cp $(PLUGIN_OUT)/kos.wasm $(DIST)/kos-of-interest.wasm
	cd plugins && $(CARGO) build --release --target $(PLUGIN_TARGET) -p wasmpacs-plugin-orders --features strict
	cp $(PLUGIN_OUT)/orders.wasm $(DIST)/orders-strict.wasm
	# Leave the default variants as the last builds, so target/ and dist/ agree.
	cd plugins && $(CARGO) build --release --target $(PLUGIN_TARGET) -p wasmpacs-plugin-patients
	cd plugins && $(CARGO) build --release --target $(PLUGIN_TARGET) -p wasmpacs-plugin-kos
	cd plugins && $(CARGO) build --release --target $(PLUGIN_TARGET) -p wasmpacs-plugin-orders

# Serve with the bundled config: embedded SQLite under ./data and the bundled plugins.
run: build
	./target/release/wasmpacs serve --config wasmpacs.toml

# Every test, on SQLite and (when reachable) PostgreSQL at 127.0.0.1:5432, then the plugins'
# own unit tests (natively: the rules they decide, without the host).
test: plugins host
	$(CARGO) test --release --workspace
	cd plugins && $(CARGO) test --release

bench: build
	$(CARGO) run --release -p wasmpacs-tests --bin bench

clean:
	$(CARGO) clean
	cd plugins && $(CARGO) clean
	rm -rf $(DIST)
