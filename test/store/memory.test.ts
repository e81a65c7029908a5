import { createMemoryStore } from '../../src/store/memory/memory-store.js';
import { describeRunStoreConformance } from './conformance.js';

describeRunStoreConformance('memory', () => {
  const store = createMemoryStore();
  return Promise.resolve({ store, cleanup: () => store.close() });
});
