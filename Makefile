# ssdconvert: every target bootstraps its own virtual environment.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

bs    ?= 16
soc   ?= Ascend310P3
model ?= ssd-resnet34
BUILD ?= build
ONNX   = $(BUILD)/$(subst -,_,$(model))_bs$(bs).onnx

.PHONY: help venv test demo onnx clean

help:
	@echo "make test            create .venv, install, run the test suite"
	@echo "make demo            run the main job on the embedded synthetic data"
	@echo "make onnx bs=16      export $(BUILD)/ssd_resnet34_bs16.onnx (dynamic batch, validated at bs)"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/ssdconvert run --workdir $(BUILD)/demo

onnx: $(STAMP)
	$(BIN)/ssdconvert export --model $(model) --bs $(bs) --output $(ONNX)

clean:
	rm -rf $(BUILD) .pytest_cache

# Inference in the ais_bench layout: make infer bs=16 [infer_model=build/x.xml] [ssd_bin=build/ssd_bin]
# (exports the ONNX first if missing; .om -> ais_bench, .onnx -> ONNX Runtime, .xml -> OpenVINO)
infer_model ?= $(ONNX)
ssd_bin     ?= $(BUILD)/ssd_bin
result      ?= $(BUILD)/result
.PHONY: infer bench bench-overhead
infer: $(STAMP)
	@test -f $(infer_model) || $(MAKE) --no-print-directory onnx bs=$(bs) model=$(model) BUILD=$(BUILD)
	$(BIN)/ssdconvert infer --model $(infer_model) --input $(ssd_bin) --output $(result) --batchsize $(bs)

# Standard batch-size sweep (ONNX Runtime + OpenVINO) -> benchmarks/results/: make bench [BENCHFLAGS="--bs 1,8 --duration 3"]
BENCHFLAGS ?=
bench: $(STAMP)
	$(BIN)/python benchmarks/sweep.py $(BENCHFLAGS)

# Runner vs bare-runtime loops and % of the FP32 matmul peak -> benchmarks/results/runner_overhead.md
bench-overhead: $(STAMP)
	$(BIN)/python benchmarks/runner_overhead.py $(BENCHFLAGS)
