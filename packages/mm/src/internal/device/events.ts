// The device-memory events (ZONE_DEVICE page maps, device migration, device-exclusive entries),
// merged into core's SimEventMap. Their own file so the mm package's shared events.ts stays
// untouched by this feature; it is imported for its declarations by device/memremap.ts.
declare module '@mmnsim/core' {
  interface SimEventMap {
    /** A driver registered device memory (`memremap_pages`). */
    'mm.devmap.add': {
      /** Pagemap id. */
      pgmap: number;
      /** `'device-private'` or `'device-coherent'`. */
      type: string;
      /** The pagemap's name (its owner's label). */
      name: string;
      /** First frame. */
      start: number;
      /** Number of pages. */
      npages: number;
    };
    /** A pagemap was removed (`memunmap_pages`); its frames went back to the free list. */
    'mm.devmap.remove': {
      /** Pagemap id. */
      pgmap: number;
    };
    /** A driver took a free device page into use (`zone_device_page_init`: refcount 1, locked). */
    'mm.device.init': {
      /** The frame. */
      pfn: number;
      /** Pagemap id. */
      pgmap: number;
    };
    /** The last reference to a device page went: the pagemap's `page_free` was called. */
    'mm.device.free': {
      /** The frame. */
      pfn: number;
      /** Pagemap id. */
      pgmap: number;
    };
    /** A CPU fault on a device-private entry called the pagemap's `migrate_to_ram`. */
    'mm.device.fault': {
      /** The mm id. */
      mm: number;
      /** Faulting address. */
      va: number;
      /** The device page. */
      pfn: number;
      /** What `migrate_to_ram` returned (`'ok'`, `'sigbus'` …). */
      result: string;
    };
    /** A step of device migration finished (`migrate_vma_*`, `migrate_device_*`). */
    'mm.migrate_device': {
      /** `'setup'`, `'pages'`, `'finalize'`, `'range'`. */
      op: string;
      /** The mm id (0 for `migrate_device_*`, which has no VMA). */
      mm: number;
      /** First address (or first pfn for `'range'`). */
      start: number;
      /** Entries of src/dst (`npages`). */
      npages: number;
      /** Entries still marked MIGRATE after the step (`cpages` after setup). */
      migrating: number;
    };
    /** `make_device_exclusive` returned. */
    'mm.device_exclusive': {
      /** The mm id. */
      mm: number;
      /** The address. */
      va: number;
      /** The page made exclusive, or the negated errno. */
      result: number;
    };
    /** A device-exclusive entry was turned back into a present PTE (CPU fault or fork). */
    'mm.device_exclusive.restore': {
      /** The mm id. */
      mm: number;
      /** The address. */
      va: number;
      /** The page. */
      pfn: number;
      /** `'fault'` or `'fork'`. */
      why: string;
    };
  }
}

export {};
