// Where the API key lives between page loads: sessionStorage by default (gone with the
// tab), localStorage when the user ticks "remember on this device".

export const KEY_NAME = 'certctl.apiKey';

function safe<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

export const keyStore = {
  get(): string | null {
    return safe(() => sessionStorage.getItem(KEY_NAME) ?? localStorage.getItem(KEY_NAME), null);
  },
  set(key: string, remember: boolean): void {
    keyStore.clear();
    safe(() => (remember ? localStorage : sessionStorage).setItem(KEY_NAME, key), undefined);
  },
  clear(): void {
    safe(() => sessionStorage.removeItem(KEY_NAME), undefined);
    safe(() => localStorage.removeItem(KEY_NAME), undefined);
  },
};
