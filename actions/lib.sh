# Sourced by the actions' steps (bash 3.2 or later: macOS runners included).

# Credentials for one registry only: custody uses CUSTODY_REGISTRY_USERNAME/PASSWORD for the
# host named by CUSTODY_REGISTRY and for no other. An empty password means none are given.
custody_registry_env() {
  local registry="$1" username="$2" password="$3"
  if [ -n "$password" ]; then
    export CUSTODY_REGISTRY="$registry" CUSTODY_REGISTRY_USERNAME="$username" CUSTODY_REGISTRY_PASSWORD="$password"
  fi
}

# The reference with its registry and repository in lower case, tag and digest as given: OCI
# repository names cannot hold upper case, and `ghcr.io/${{ github.repository }}` can.
# OCI layouts (oci:<dir>) are paths and stay as they are.
custody_lower_reference() {
  local ref="$1" digest="" tag="" name last
  case "$ref" in oci:* | "") printf '%s' "$ref"; return ;; esac
  case "$ref" in *@*) digest="@${ref#*@}"; ref="${ref%%@*}" ;; esac
  name="$ref"
  last="${ref##*/}"
  case "$ref" in */*:*) case "$last" in *:*) tag=":${last#*:}"; name="${ref%:*}" ;; esac ;; esac
  printf '%s%s%s' "$(printf '%s' "$name" | tr '[:upper:]' '[:lower:]')" "$tag" "$digest"
}
