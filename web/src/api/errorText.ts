// Russian texts for the API's errors (api/errors.py: `{code, message, field, details}`). The
// API speaks English; the Russian UI shows the common errors in Russian — by code, by
// pydantic's error type, or by the shape of the server's message — and the server's own
// message for anything else. The English UI shows the server's message as it is.

type Rule = [RegExp, (m: RegExpMatchArray) => string];

// Pydantic's validation messages (a 422 `validation_error`'s details, by `type`).
const BY_TYPE: Record<string, (message: string) => string> = {
  missing: () => "Обязательное поле",
  string_too_short: (m) => `Не короче ${num(m)} ${plural(num(m), "символа", "символов", "символов")}`,
  string_too_long: (m) => `Не длиннее ${num(m)} ${plural(num(m), "символа", "символов", "символов")}`,
  string_pattern_mismatch: () => "Неверный формат",
  string_type: () => "Нужна строка",
  int_parsing: () => "Нужно целое число",
  int_type: () => "Нужно целое число",
  int_from_float: () => "Нужно целое число",
  float_parsing: () => "Нужно число",
  decimal_parsing: () => "Нужно число",
  decimal_type: () => "Нужно число",
  decimal_max_places: (m) => `Не больше ${num(m)} знаков после запятой`,
  decimal_max_digits: (m) => `Не больше ${num(m)} цифр`,
  decimal_whole_digits: (m) => `Не больше ${num(m)} цифр до запятой`,
  bool_parsing: () => "Нужно «да» или «нет»",
  bool_type: () => "Нужно «да» или «нет»",
  greater_than_equal: (m) => `Не меньше ${num(m)}`,
  greater_than: (m) => `Больше ${num(m)}`,
  less_than_equal: (m) => `Не больше ${num(m)}`,
  less_than: (m) => `Меньше ${num(m)}`,
  literal_error: () => "Недопустимое значение",
  enum: () => "Недопустимое значение",
  too_long: (m) => `Не больше ${num(m)} элементов`,
  too_short: (m) => `Не меньше ${num(m)} элементов`,
  list_type: () => "Нужен список",
  extra_forbidden: () => "Лишнее поле",
  json_invalid: () => "Неверный JSON",
};

function num(message: string): string {
  return message.match(/-?\d+(\.\d+)?/)?.[0] ?? "";
}

function plural(n: string, one: string, few: string, many: string): string {
  const v = Math.abs(Number(n)) % 100;
  if (v % 10 === 1 && v !== 11) return one;
  if (v % 10 >= 2 && v % 10 <= 4 && (v < 12 || v > 14)) return few;
  return many;
}

// Messages the API's own checks write (numbers.py, crud.py, routes/*), without the field prefix.
const BY_MESSAGE: Rule[] = [
  [/^'?(.*?)'? is already in use$/, (m) => `Значение «${m[1]}» уже занято`],
  [/^'?(\d+)'? already has a rate in tariff/, (m) => `Для префикса ${m[1]} в этом тарифе уже есть ставка`],
  [/^[a-z_ ]+ (\d+) not found$/, () => "Такого объекта нет (он удалён или принадлежит другому клиенту)"],
  [/^may not be null$/, () => "Не может быть пустым"],
  [/^required when register is on$/, () => "Обязательно, когда включена регистрация у оператора"],
  [/^internal number must contain digits only/, () => "Внутренний номер состоит только из цифр"],
  [/^internal number must have (\d+) to (\d+) digits/, (m) => `Во внутреннем номере от ${m[1]} до ${m[2]} цифр`],
  [/is an emergency number and cannot be an internal number/, () => "Номер экстренной службы не может быть внутренним"],
  [/is an emergency number/, () => "Это номер экстренной службы"],
  [/^empty telephone number$/, () => "Номер не указан"],
  [/^not a telephone number/, () => "Это не телефонный номер"],
  [/^cannot read .* as a number/, () => "Не удаётся распознать номер"],
  [/^too long for E\.164/, () => "Слишком длинный номер (в E.164 не больше 15 цифр)"],
  [/^too short for E\.164/, () => "Слишком короткий номер"],
  [/^a country code cannot start with 0/, () => "Код страны не может начинаться с 0"],
  [/^\+(\d+) numbers have (\d+) digits after the country code/, (m) => `После кода страны +${m[1]} должно быть ${m[2]} цифр`],
  [/^not in E\.164 form/, () => "Номер не в формате E.164"],
  [/^a host name or IP address without scheme/, () => "Имя хоста или IP-адрес, без схемы, порта и пробелов"],
  [/is not an IP address or network/, () => "Это не IP-адрес и не сеть"],
  [/^not a valid regex/, () => "Неверное регулярное выражение"],
  [/^bad replacement/, () => "Неверная замена (ссылка на несуществующую группу?)"],
  [/^unknown time zone/, () => "Неизвестный часовой пояс; пример: Europe/Moscow"],
  [/^you cannot change your own level$/, () => "Нельзя изменить свой собственный уровень"],
  [/^you cannot deactivate your own account$/, () => "Нельзя отключить свою учётную запись"],
  [/^you cannot remove your own rights$/, () => "Нельзя отнять права у самого себя"],
  [/^you cannot delete your own account$/, () => "Нельзя удалить свою учётную запись"],
  [/^you cannot grant rights you do not hold/, () => "Нельзя выдать права, которых нет у вас самих"],
  [/^this account holds rights you do not/, () => "У этой учётной записи есть права, которых нет у вас: пароль меняет её администратор"],
  [/^a payment of zero changes nothing/, () => "Платёж не может быть нулевым"],
  [/^tariff \d+ is in ([A-Z]{3}), the account in ([A-Z]{3})$/, (m) => `Тариф в валюте ${m[1]}, а счёт в ${m[2]}`],
];

// Errors whose code says it all.
const BY_CODE: Record<string, string> = {
  forbidden: "Недостаточно прав",
  not_found: "Не найдено",
  unauthorized: "Требуется вход",
  csrf_failed: "Сессия устарела: обновите страницу",
  conflict: "Изменение противоречит существующим данным",
  invalid_data: "Значение нельзя сохранить: вне допустимого диапазона или неверный формат",
  engine_not_running: "Обработка вызовов не запущена: управлять вызовами сейчас нельзя",
  too_large: "Слишком большой файл",
  too_many_rows: "Слишком много строк",
  file_missing: "Файл не найден",
  bad_credentials: "Неверный логин или пароль",
  too_many_attempts: "Слишком много неудачных попыток входа. Повторите позже.",
};

// Tables named by a 409 `in_use` answer's details (crud.usages).
const ENTITIES: Record<string, string> = {
  ports: "порт",
  internal_numbers: "внутренний номер",
  external_numbers: "внешний номер",
  dialplans: "диалплан",
  queues: "очередь",
  queue_agents: "агент очереди",
  forwarding_numbers: "номер переадресации",
  voice_menus: "голосовое меню",
  voice_menu_items: "пункт голосового меню",
  classifiers: "классификатор",
  pickup_groups: "группа перехвата",
  media_files: "медиафайл",
  media_packs: "медиапакет",
  voicemail_boxes: "ящик голосовой почты",
  campaigns: "кампания телемаркетинга",
  campaign_classifiers: "кампания телемаркетинга",
  users: "пользователь",
  operators: "оператор",
  tariffs: "тариф",
  billing_accounts: "биллинговый счёт",
  clients: "клиент",
};

function stripField(message: string, field: string | null | undefined): string {
  return field && message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message;
}

/** One message in Russian, or null when it is not one we know. */
export function russianMessage(message: string, field?: string | null, type?: string | null): string | null {
  // Pydantic prefixes the texts of the API's own validators ("Value error, unknown time zone").
  const bare = stripField(message, field).replace(/^Value error, /, "");
  if (type && BY_TYPE[type]) return BY_TYPE[type](bare);
  for (const [pattern, render] of BY_MESSAGE) {
    const m = bare.match(pattern);
    if (m) return render(m);
  }
  return null;
}

export interface Usage {
  entity?: string;
  label?: string | null;
  id?: number;
}

/** "диалплан «Номер 100, шаг 2»" for one usage of an object that is still in use. */
export function usageText(u: Usage, russian: boolean): string {
  const label = u.label ?? (u.id !== undefined ? `#${u.id}` : "");
  if (!russian) return [u.entity, label].filter(Boolean).join(" ");
  const what = ENTITIES[u.entity ?? ""] ?? u.entity ?? "";
  return [what, label ? `«${label.replace(/ step (\d+)$/, ", шаг $1")}»` : ""].filter(Boolean).join(" ");
}

interface Body {
  code: string;
  message: string;
  field: string | null;
  details: { field?: unknown; message?: unknown; type?: unknown; [k: string]: unknown }[];
}

/** The whole error's text in Russian (falls back to the server's message). */
export function russianError(status: number, body: Body): string {
  const { code, message, field, details } = body;
  if (code === "validation_error" && details.length) {
    const d = details[0];
    return russianMessage(String(d.message ?? ""), String(d.field ?? ""), String(d.type ?? "")) ?? message;
  }
  if (code === "in_use") {
    const list = details.map((u) => usageText(u as Usage, true)).join(", ");
    return list ? `Объект используется: ${list}` : "Объект используется другими объектами";
  }
  if (code === "bad_reference") return "Такого объекта нет (он удалён или принадлежит другому клиенту)";
  if (code === "not_implemented") return `Ещё не реализовано: ${message}`;
  const known = russianMessage(message, field);
  if (known) return known;
  if (BY_CODE[code]) return BY_CODE[code];
  if (status >= 500) return `Ошибка сервера (${status}): ${message}`;
  return message;
}
