import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` proxies the API to a running `cloudpbx run` (default port 8080), so the
// session cookie stays same-origin as in production, where the Python app serves web/dist.
export default defineConfig({
  plugins: [react()],
  server: {
    proxy: { "/api": process.env.CLOUDPBX_URL ?? "http://127.0.0.1:8080" },
  },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
  },
});
