// Runs before each integration test file. Real servers take real time; Jest 30's runner reads
// `testTimeout` only from the global config, not from a project, so it is set here.
jest.setTimeout(60_000);
