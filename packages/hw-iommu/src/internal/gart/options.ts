/**
 * Options of the GART model (the `gart` field of the `iommu` plugin's options). Its own file so
 * the IOMMU's option schema only gains one field.
 */
import { z } from 'zod';

/** Schema of the GART options; unknown keys are rejected. */
export const GartOptionsSchema = z.strictObject({
  /** Aperture size in 4 KiB pages (64 .. 65,536; default 128). The GATT has one entry per page. */
  aperturePages: z.number().int().min(64).max(65536).default(128),
  /**
   * GART TLB flush policy of the GART IOMMU: `'full'` flushes after every map (`iommu_fullflush`
   * = 1, Linux's default); `'lazy'` flushes only when the allocator wrapped (`need_flush`).
   */
  flushPolicy: z.union([z.literal('full'), z.literal('lazy')]).default('full'),
  /** Aperture pages reserved at its start for overflow (`EMERGENCY_PAGES`, 32 in Linux). */
  emergencyPages: z.number().int().min(0).max(1024).default(32),
  /** Device context the CPU caches' hardware steps run on (must be in the simulation's devices). */
  cacheContext: z.string().min(1).default('cache'),
});

/** The GART options after validation and defaults. */
export type GartOptions = z.output<typeof GartOptionsSchema>;
