package main

// extraCommands lists the subcommands beyond version. Each lives in its own
// file (cloud.go, certs.go, shadow.go, …) and is added here.
func extraCommands() []command {
	return []command{
		{name: "cloud", summary: "run the local AWS IoT cloud: MQTT broker + Device Shadow service", run: runCloud},
		{name: "certs", summary: "write a development CA, server and device certificates for mutual TLS", run: runCerts},
		{name: "jobs", summary: "create, list, describe or cancel IoT jobs on the local cloud (the cloud side)", run: runJobs},
		{name: "shadow", summary: "get, update or delete a device shadow (the cloud side, for people and scripts)", run: runShadow},
		{name: "validate", summary: "check a configuration file and print every problem with file:line:column", run: runValidate},
		{name: "plan", summary: "show which shadow key drives or reads which device, pin or bus", run: runPlan},
		{name: "sim", summary: "simulate a device: local cloud, agent on fake hardware with physics, a scripted cloud side", run: runSim},
		{name: "run", summary: "run the device agent: keep the hardware and its shadows in step (the daemon)", run: runRun},
		{name: "fleet", summary: "simulate many devices in one process against a cloud: latency, lost updates, reconnects, cost per device", run: runFleet},
		{name: "status", summary: "show the running agent's connection, per-key results and sensor readings", run: runStatus},
	}
}
