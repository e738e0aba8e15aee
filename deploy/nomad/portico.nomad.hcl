# Portico on Nomad: one control-plane server and a fleet of proxies, configuration in Consul KV,
# certificates in Vault, Upstreams found in Consul's catalog and Nomad's services.
#
#   nomad var put nomad/jobs/portico fleet_token="$(openssl rand -hex 32)"
#   nomad job run deploy/nomad/portico.nomad.hcl
#
# Walk-through: docs/hashicorp.md. The server renders its Settings from this file's template (Consul
# KV as storage, Vault as secret source); the proxies find the server through its Consul service.
variable "image_dir" {
  description = "Where the portico binary is on the clients (raw_exec); or swap the driver."
  type        = string
  default     = "/usr/local/bin"
}

variable "consul_kv_root" {
  description = "Consul KV prefix holding the resources (Gloo's layout below it)."
  type        = string
  default     = "portico"
}

variable "vault_address" {
  type    = string
  default = "https://vault.service.consul:8200"
}

variable "proxies" {
  type    = number
  default = 3
}

job "portico" {
  type = "service"

  group "server" {
    count = 1

    network {
      port "fleet" {}
      port "admin" {}
    }

    service {
      name     = "portico-server"
      port     = "fleet"
      provider = "consul"
      # /ready on --listen wants the bearer token (the address is beyond loopback): a TCP check.
      check {
        type     = "tcp"
        port     = "fleet"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "server" {
      driver = "raw_exec"

      # A Vault token for the secret source, renewed by Nomad and written to secrets/vault_token.
      vault {
        policies    = ["portico-secrets-read"]
        change_mode = "noop" # Portico re-reads tokenFile when renewing or after a 403
      }

      # The fleet's shared token (nomad var put nomad/jobs/portico fleet_token=...).
      template {
        destination = "secrets/fleet-token"
        perms       = "0400"
        data        = "{{ with nomadVar \"nomad/jobs/portico\" }}{{ .fleet_token }}{{ end }}"
      }

      # Settings: storage in Consul KV, secrets in Vault. Only this file lives in the directory:
      # every other resource is read from Consul KV.
      template {
        destination = "local/conf/settings.yaml"
        change_mode = "noop" # sources are made at start; `nomad alloc restart` to change them
        data        = <<-EOT
          apiVersion: gloo.solo.io/v1
          kind: Settings
          metadata: {name: default, namespace: gloo-system}
          spec:
            consul:
              address: http://{{ env "attr.unique.network.ip-address" }}:8500
              waitTime: 60s
            consulKvSource:
              rootKey: ${var.consul_kv_root}
              consistencyMode: consistent
            vaultSecretSource:
              address: ${var.vault_address}
              tokenFile: {{ env "NOMAD_SECRETS_DIR" }}/vault_token
              pathPrefix: secret
              rootKey: portico
              pollInterval: 10s
        EOT
      }

      # mTLS instead of (or besides) the token: render a certificate and key (e.g. from Vault's PKI
      # in a template) and add "--tls-cert", "--tls-key" and "--client-ca" here; the proxies then
      # take --server https://..., --ca, --cert and --key (docs/operations.md, "A fleet").
      config {
        command = "${var.image_dir}/portico"
        args = [
          "server", "local/conf",
          "--listen", "${NOMAD_IP_fleet}:${NOMAD_PORT_fleet}",
          "--token-file", "secrets/fleet-token",
          "--admin", "127.0.0.1:${NOMAD_PORT_admin}",
        ]
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }

  group "proxy" {
    count = var.proxies

    # Gateways bind their own ports (Gateway bindPort), one proxy per client node.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      port "http" { static = 8080 }
      port "https" { static = 8443 }
      port "admin" {}
    }

    service {
      name     = "portico-proxy"
      port     = "http"
      provider = "consul"
      # The Gateway's port is bound once the first configuration from the server is applied: a
      # TCP check on it is readiness (the admin API stays on loopback).
      check {
        type     = "tcp"
        port     = "http"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "proxy" {
      driver = "raw_exec"

      template {
        destination = "secrets/fleet-token"
        perms       = "0400"
        data        = "{{ with nomadVar \"nomad/jobs/portico\" }}{{ .fleet_token }}{{ end }}"
      }

      # The server's address from its Consul service; a new address restarts the proxy, which
      # keeps nothing but reconnects and gets the configuration again in milliseconds.
      template {
        destination = "local/server.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ range service "portico-server" }}PORTICO_SERVER=http://{{ .Address }}:{{ .Port }}
          {{ end }}
        EOT
      }

      config {
        command = "/bin/sh"
        args = [
          "-c",
          "exec ${var.image_dir}/portico proxy --server \"$PORTICO_SERVER\" --node \"$NOMAD_ALLOC_ID\" --token-file secrets/fleet-token --admin 127.0.0.1:$NOMAD_PORT_admin",
        ]
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "30s" # in-flight requests finish (drainTimeout, 10 s by default)

      resources {
        cpu    = 1000
        memory = 256
      }
    }
  }
}
