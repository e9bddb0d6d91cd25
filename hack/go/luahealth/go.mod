// Runs Argo CD resource health checks (health.lua) in gopher-lua, the Lua VM
// Argo CD embeds, at the version Argo CD pins. Built by build.sh.
module familyhub.dev/hack/luahealth

go 1.25.0

require (
	github.com/yuin/gopher-lua v1.1.2
	sigs.k8s.io/yaml v1.6.0
)

require go.yaml.in/yaml/v2 v2.4.2 // indirect
