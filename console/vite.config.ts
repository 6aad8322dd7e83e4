import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// Served by the gateway under /console/ (see gateway/src/http/console.rs). `npm run dev`
// proxies the API to a local `vectron dev` (VECTRON_URL, default http://127.0.0.1:8080).
const api = process.env.VECTRON_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/console/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false },
  server: { proxy: { '/v1': api, '/metrics': api } },
});
