#!/bin/sh
# Re-make the vault fixtures with the real ansible-vault (from the test extras), from plain/.
# Run from the repository root: sh tests/data/vault/make-fixtures.sh
# Passwords: password.txt (vault id "default", format 1.1), prod-password.txt (vault id
# "prod", format 1.2). tests/unit/test_vault_fixtures.py checks redmedic and ansible-vault
# agree on every file made here.
set -eu
cd "$(dirname "$0")"
vault=${ANSIBLE_VAULT:-../../../.venv/bin/ansible-vault}
default="--vault-id default@password.txt"
prod="--vault-id prod@prod-password.txt --encrypt-vault-id prod"

{
    echo "# Made by make-fixtures.sh with ansible-vault encrypt_string; plain text in plain/values.yaml."
    $vault encrypt_string $default --name redis_password 'r3dis-S3cret!'
    $vault encrypt_string $prod --name cluster_key 'k-9f2c'
    echo "redis_port: 6379"
} > values.yaml

mkdir -p group_vars
cp plain/group_vars-redis.yaml group_vars/redis.yaml
$vault encrypt $default group_vars/redis.yaml

cp plain/inventory.yaml inventory.yaml
$vault encrypt $prod inventory.yaml
