# wasmpacs: build, run, test and benchmark. Everything builds in the release profile once;
# tests and benchmarks reuse that build and the compiled plugins.
CARGO ?= cargo
PLUGIN_TARGET := wasm32-wasip2
PLUGIN_OUT := plugins/target/$(PLUGIN_TARGET)/release
DIST := plugins/dist

.PHONY: build host plugins run test bench clean

build: plugins host

host:
	$(CARGO) build --release --bin wasmpacs

# The bundled plugin components, plus the example/test variants used by hot-reload tests.
plugins:
	rustup target add $(PLUGIN_TARGET) >/dev/null 2>&1 || true
	$(CARGO) build --release --target $(PLUGIN_TARGET) --manifest-path plugins/Cargo.toml
	mkdir -p $(DIST)
	cp $(PLUGIN_OUT)/patients.wasm $(PLUGIN_OUT)/hostile.wasm $(DIST)/
	$(CARGO) build --release --target $(PLUGIN_TARGET) --manifest-path plugins/Cargo.toml \
		-p wasmpacs-plugin-patients --features strict
	cp $(PLUGIN_OUT)/patients.wasm $(DIST)/patients-strict.wasm
	# Leave the default variant as the last build, so target/ and dist/ agree.
	$(CARGO) build --release --target $(PLUGIN_TARGET) --manifest-path plugins/Cargo.toml -p wasmpacs-plugin-patients

# Serve with the bundled config: embedded SQLite under ./data and the bundled plugins.
run: build
	./target/release/wasmpacs serve --config wasmpacs.toml

# Every test, on SQLite and (when reachable) PostgreSQL at 127.0.0.1:5432.
test: plugins host
	$(CARGO) test --release --workspace

bench: build
	$(CARGO) run --release -p wasmpacs-tests --bin bench

clean:
	$(CARGO) clean
	$(CARGO) clean --manifest-path plugins/Cargo.toml
	rm -rf $(DIST)
