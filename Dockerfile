# The shared base of the free and premium images: Python, torch (CPU-only by default),
# classify.py and both datasets baked in, a non-root user.
#   docker build --secret id=ca,src=<CA bundle> --build-arg BASE_IMAGE=... -t img-classification-base .
# BASE_IMAGE: any Debian-like image with python3 and its venv module (python:3.11-slim by
# default; `bash images/debian-base.sh` makes one where no registry can be reached).
# TORCH_INDEX: where torch comes from; PIP_INDEX: everything else.
# The optional secret `ca` is a CA bundle for pip behind a TLS-inspecting proxy; as a secret it
# never becomes part of a layer.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG PIP_INDEX=https://pypi.org/simple
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
COPY requirements-workload.txt /tmp/requirements-workload.txt
# pip's cache lives in a build cache mount: rebuilds reuse the downloads, the image holds none.
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    python3 -m venv /opt/venv \
    && pip install --disable-pip-version-check --index-url "$TORCH_INDEX" \
        --extra-index-url "$PIP_INDEX" -r /tmp/requirements-workload.txt \
    && rm /tmp/requirements-workload.txt \
    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin classify
COPY data/ /data/
COPY idx_data.py classify.py /app/
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT ["python3", "/app/classify.py"]
