import { defineConfig } from 'vitest/config';

// No React plugin: Vite's built-in transform handles TSX (automatic JSX runtime); the
// dashboard needs no fast refresh to be developed (`npm run dev` proxies /api to a server).
export default defineConfig({
  oxc: { jsx: { runtime: 'automatic' } },
  build: {
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 600,
    rolldownOptions: {
      // TanStack Query's "use client" markers mean nothing outside React Server Components.
      onwarn(warning, warn) {
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE') return;
        warn(warning);
      },
    },
  },
  server: {
    proxy: {
      '/api': process.env.CERTCTL_DEV_API ?? 'http://127.0.0.1:18600',
      '/health': process.env.CERTCTL_DEV_API ?? 'http://127.0.0.1:18600',
      '/.well-known': process.env.CERTCTL_DEV_API ?? 'http://127.0.0.1:18600',
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
