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
