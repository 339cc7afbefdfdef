-- Prosody for the compose demo only (profile "demo"): one virtual host,
-- reachable inside the compose network as xmpp.sockethub.test.
-- Plain-text client connections are allowed because the server is only
-- published on 127.0.0.1; never use this configuration on a real network.
admins = { }
modules_enabled = {
    "roster"; "saslauth"; "tls"; "dialback"; "disco"; "carbons"; "pep";
    "private"; "blocklist"; "vcard4"; "vcard_legacy"; "version"; "uptime";
    "time"; "ping"; "register"; "mam";
}
modules_disabled = { "s2s" }
allow_registration = false
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
storage = "internal"
log = { info = "*console" }
pidfile = "/var/run/prosody/prosody.pid"

VirtualHost "xmpp.sockethub.test"

Component "conference.xmpp.sockethub.test" "muc"
