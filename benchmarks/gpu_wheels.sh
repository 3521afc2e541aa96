#!/usr/bin/env bash
# Wheels for the lent GPU machine's image (it has torch, timm, numpy, matplotlib, pillow, tqdm,
# pytest, scikit-learn, torchvision; no anywidget, ipywidgets, IPython, nbformat or Lucent, and
# no network): downloaded here into .whl/, which gpu_check.sh installs there. Pinned to the
# versions this project is tested with; Lucent 0.1.8 needs kornia 0.4.1.
#   bash benchmarks/gpu_wheels.sh      # then: run(command="bash benchmarks/gpu_check.sh", carry=[".whl"])
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
rm -rf .whl
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${tag}_x86_64")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d .whl \
    anywidget==0.11.0 psygnal==0.16.1 ipywidgets==8.1.9 comm==0.2.3 traitlets==5.15.0 \
    widgetsnbextension==4.0.16 jupyterlab_widgets==3.0.17 ipython==8.12.3 backcall==0.2.0 \
    pickleshare==0.7.5 decorator==5.2.1 jedi==0.20.0 parso==0.8.7 matplotlib-inline==0.2.2 \
    pexpect==4.8.0 ptyprocess==0.7.0 prompt_toolkit==3.0.52 wcwidth==0.7.0 stack_data==0.6.3 \
    executing==2.2.1 asttokens==3.0.1 pure_eval==0.2.3 nbformat==5.11.1 fastjsonschema==2.22.3 \
    jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 \
    rpds-py==0.30.0 jupyter_core==5.9.1 platformdirs==4.14.8 \
    torch-lucent==0.1.8 kornia==0.4.1 future==1.0.0
du -sh .whl && ls .whl | wc -l
