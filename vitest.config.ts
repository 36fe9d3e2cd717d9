import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    setupFiles: ['test/helpers/setup.ts'],
    // Ends any private PostgreSQL cluster a test left running (test/helpers/pg-cluster.ts).
    globalSetup: ['test/helpers/pg-teardown.ts'],
    pool: 'forks',
  },
});
