/** A JSON primitive: what an event payload may hold at its leaves. */
export type JsonPrimitive = string | number | boolean | null;

/**
 * A plain JSON value. Event payloads, replay files and log headers are made of these, so a
 * log written in one process reads back identically in another.
 */
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };
