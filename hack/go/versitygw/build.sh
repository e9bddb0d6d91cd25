#!/usr/bin/env bash
# versitygw: the S3 server for the media S3-store tests, cached as versitygw-<version>.
exec bash "$(dirname "$0")/../build-cached.sh" versitygw github.com/versity/versitygw@v1.8.0 github.com/versity/versitygw/cmd/versitygw
