# One image for web, CPU worker and GPU worker; only the torch build differs.
#   CPU (default):  docker build -t annotation .
#   GPU:            docker build -t annotation-gpu --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
# (pick the CUDA wheel index that matches the host's driver; see docs/setup.md)
FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MEDIA_ROOT=/data/media \
    HF_HOME=/data/hf \
    TINY_MODEL_DIR=/data/tiny-chat-model

WORKDIR /app

# torch first, from the wheel index chosen above, so requirements.txt finds it already satisfied.
RUN pip install --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
# Static files are collected at build time and served by WhiteNoise from the image.
RUN DJANGO_SETTINGS_MODULE=config.settings python manage.py collectstatic --noinput -v0 \
    && useradd --create-home --uid 1000 app \
    && mkdir -p /data/media /data/hf \
    && chown -R app:app /data

USER app
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120"]
